"""v1.jsonl = the bundle's items; v2.jsonl = v1 + 20 new near-duplicates (new model number) of random items."""
import json
import re

import numpy as np
from semrec.bundle import Bundle
from semrec_worker.refresh.text import load_items

bundle = Bundle.load("runs/demo/sasrec")
items = load_items("synthetic")
v1 = [items[i] for i in bundle.item_ids]
rng = np.random.default_rng(0)
sources = rng.choice(len(v1), 20, replace=False)
new = []
for n, row in enumerate(sources):
    src = v1[row]
    title = re.sub(r"\d+", str(1000 + n), src.title or "", count=1)
    new.append(type(src)(f"new-{n}", title=title, brand=src.brand, categories=list(src.categories)))


def write(path, rows):
    with open(path, "w") as f:
        f.write("".join(json.dumps(i.to_json()) + "\n" for i in rows))


write("v1.jsonl", v1)
write("v2.jsonl", v1 + new)
json.dump({f"new-{n}": bundle.item_ids[row] for n, row in enumerate(sources)}, open("sources.json", "w"))
print(v1[sources[0]].to_json(), new[0].to_json())
