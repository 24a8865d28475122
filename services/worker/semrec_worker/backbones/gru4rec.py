"""GRU4Rec (Hidasi et al., ICLR 2016, "Session-based Recommendations with Recurrent Neural Networks").

h_t = GRU(e_{x_t}, h_{t-1}) (eqs. 1-4 of the paper: update gate z_t, reset gate r_t, candidate state and
interpolation), h_0 = 0, over the item embeddings of the history; h_s = h_T after the last item. The
paper's session-parallel mini-batches become per-prefix targets here: the output after every position
predicts the next item, all positions of a sequence in one pass. Written from the paper (the official code's
licence is research-only).

Left padding: a GRU would update its state over the leading padding steps and give an output that depends on
how much padding there is. The forward pass therefore rotates each row so its items come first (padding at
the end, never reached before the last item), runs the GRU, and rotates the outputs back: the result is
independent of the padded width and exports to ONNX as gathers around one GRU node.

Serving (`final_position`) is already last-state: the recurrence has to run over the history anyway, and only
the last item's output row is gathered back (not all W rows, of which `forward` keeps the last).
"""

from __future__ import annotations

import torch
from torch import nn

from semrec_worker.backbones.base import SequenceEncoder


class GRU4Rec(SequenceEncoder):
    name = "gru4rec"
    causal = True

    def __init__(
        self,
        item_embedding: nn.Module,
        max_len: int = 50,
        num_layers: int = 1,
        dropout: float = 0.2,
        **_: object,
    ) -> None:
        super().__init__(item_embedding, max_len)
        self.input_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(self.dim, self.dim, num_layers=num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.output_dropout = nn.Dropout(dropout)

    def front_outputs(self, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(GRU outputs [B, W, dim] of the rows rotated items-first, the number of items per row [B, 1])."""
        width = item_ids.shape[1]
        lengths = (item_ids != 0).sum(dim=1, keepdim=True)
        columns = torch.arange(width, device=item_ids.device).unsqueeze(0)
        to_front = (columns + width - lengths) % width  # items first, padding last
        outputs, _ = self.gru(self.input_dropout(self.embed(item_ids.gather(1, to_front))))
        return outputs, lengths

    def sequence_output(self, item_ids: torch.Tensor) -> torch.Tensor:
        outputs, lengths = self.front_outputs(item_ids)
        width = item_ids.shape[1]
        columns = torch.arange(width, device=item_ids.device).unsqueeze(0)
        back = ((columns - (width - lengths)) % width).unsqueeze(-1).expand(-1, -1, self.dim)
        return self.output_dropout(outputs.gather(1, back))

    def final_position(self, item_ids: torch.Tensor) -> torch.Tensor:
        outputs, lengths = self.front_outputs(item_ids)
        last = ((lengths - 1) % item_ids.shape[1]).unsqueeze(-1).expand(-1, 1, self.dim)  # an empty row: W - 1
        return self.output_dropout(outputs.gather(1, last)[:, 0])
