"""A seeded synthetic catalogue whose text predicts behaviour: the embedded default for the demo and tests.

Items belong to a category (with a brand and a product noun from that category's vocabulary); their
titles and captions name all three. Users prefer one to three categories, and each next item is drawn
with a bias towards the previous item's category, brand and noun, and towards the category's
"complement" (camera -> camera accessories), so an embedding that reads the text can predict the next
item better than ids alone. Popularity is Zipf-distributed, giving a realistic head and tail.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from semrec.config import JobConfig
from semrec.errors import UserError

from semrec_worker.data.records import Item, RawInteractions

CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    # category: (product nouns, brands)
    "Cameras": (["Camera", "Camcorder", "Action Cam", "Instant Camera"], ["Lumix", "Optica", "Shutterly"]),
    "Camera Accessories": (["Tripod", "Lens Filter", "Camera Bag", "Memory Card"], ["Optica", "GripPro", "Lumix"]),
    "Coffee": (["Espresso Machine", "Coffee Grinder", "French Press", "Pour-Over Kettle"], ["Brewster", "Crema"]),
    "Coffee Supplies": (["Coffee Beans", "Paper Filters", "Descaler", "Milk Frother"], ["Crema", "BeanCo", "Brewster"]),
    "Camping": (["Tent", "Sleeping Bag", "Camp Stove", "Headlamp"], ["TrailMark", "Summit", "Ridgeline"]),
    "Hiking": (["Hiking Boots", "Trekking Poles", "Daypack", "Water Filter"], ["Summit", "TrailMark", "Alpina"]),
    "Lab Equipment": (["Microscope", "Centrifuge", "Hot Plate", "Pipette"], ["LabCore", "Scientia", "Precisa"]),
    "Lab Supplies": (["Test Tubes", "Petri Dishes", "Nitrile Gloves", "Beakers"], ["Scientia", "LabCore", "SafeHands"]),
    "Gaming": (["Game Console", "Gaming Mouse", "Mechanical Keyboard", "Headset"], ["Pixelforge", "Nexa", "Raptor"]),
    "Gaming Accessories": (["Controller", "Charging Dock", "Mouse Pad", "Capture Card"], ["Nexa", "Raptor", "Pixelforge"]),
    "Kitchen": (["Chef Knife", "Cutting Board", "Cast Iron Skillet", "Stand Mixer"], ["Culina", "Forgewell", "Hearth"]),
    "Baking": (["Baking Sheet", "Mixing Bowls", "Rolling Pin", "Measuring Cups"], ["Hearth", "Culina", "Flourish"]),
}
COMPLEMENT = {
    "Cameras": "Camera Accessories", "Coffee": "Coffee Supplies", "Camping": "Hiking",
    "Lab Equipment": "Lab Supplies", "Gaming": "Gaming Accessories", "Kitchen": "Baking",
}
COMPLEMENT.update({v: k for k, v in list(COMPLEMENT.items())})
ADJECTIVES = ["Compact", "Pro", "Ultra", "Classic", "Deluxe", "Lightweight", "Heavy-Duty", "Premium", "Mini", "Smart"]
COLOURS = ["Black", "Silver", "Red", "Blue", "Green", "White"]


class SyntheticConfig(JobConfig):
    users: int = Field(2000, ge=10, description="number of users")
    items: int = Field(600, ge=len(CATEGORIES), description="number of items")
    avg_len: float = Field(12.0, ge=5, description="mean interactions per user (minimum 5)")
    zipf: float = Field(1.0, ge=0, description="popularity skew (0 = uniform)")
    seed: int = Field(0, description="random seed")

    @property
    def name(self) -> str:
        return f"synthetic-u{self.users}-i{self.items}-s{self.seed}"

    @classmethod
    def from_spec(cls, spec: str) -> SyntheticConfig:
        """'synthetic' or 'synthetic:users=500,items=200,seed=3'."""
        _, _, rest = spec.partition(":")
        values: dict[str, str] = {}
        for part in filter(None, rest.split(",")):
            key, sep, value = part.partition("=")
            if not sep:
                raise UserError(f"synthetic spec {spec!r}: expected key=value, got {part!r}")
            values[key.strip()] = value.strip()
        return cls.model_validate(values)


def _make_items(config: SyntheticConfig, rng: np.random.Generator) -> tuple[dict[str, Item], np.ndarray, list[str]]:
    names = list(CATEGORIES)
    category_of = np.arange(config.items) % len(names)
    rng.shuffle(category_of)
    items: dict[str, Item] = {}
    nouns, brands = [], []
    for idx, c in enumerate(category_of):
        cat = names[c]
        noun_list, brand_list = CATEGORIES[cat]
        noun, brand = noun_list[rng.integers(len(noun_list))], brand_list[rng.integers(len(brand_list))]
        title = f"{brand} {ADJECTIVES[rng.integers(len(ADJECTIVES))]} {noun} {rng.integers(100, 999)} {COLOURS[rng.integers(len(COLOURS))]}"
        item_id = f"I{idx:05d}"
        items[item_id] = Item(item_id, title, brand, [cat], {})
        nouns.append(noun)
        brands.append(brand)
    return items, category_of, [f"{b}|{n}" for b, n in zip(brands, nouns, strict=True)]


def generate(config: SyntheticConfig) -> tuple[RawInteractions, dict[str, Item]]:
    rng = np.random.default_rng(config.seed)
    items, category_of, brand_noun = _make_items(config, rng)
    names = list(CATEGORIES)
    n_cat = len(names)
    popularity = 1.0 / np.arange(1, config.items + 1) ** config.zipf
    rng.shuffle(popularity)
    brand = np.array([bn.split("|")[0] for bn in brand_noun])
    noun = np.array([bn.split("|")[1] for bn in brand_noun])
    members = [np.flatnonzero(category_of == c) for c in range(n_cat)]
    complement = np.array([names.index(COMPLEMENT[n]) for n in names])
    item_ids = list(items)

    users, seq_items, times = [], [], []
    for u in range(config.users):
        favourites = rng.choice(n_cat, size=rng.integers(1, 4), replace=False)
        length = max(5, int(rng.geometric(1.0 / (config.avg_len - 4))) + 4)
        c = int(rng.choice(favourites))
        prev = -1
        for t in range(length):
            r = rng.random()
            if prev >= 0 and r < 0.45:
                c = int(category_of[prev])
            elif prev >= 0 and r < 0.75:
                c = int(complement[category_of[prev]])
            elif r < 0.95:
                c = int(rng.choice(favourites))
            else:
                c = int(rng.integers(n_cat))
            candidates = members[c]
            weights = popularity[candidates].copy()
            if prev >= 0:
                weights *= np.where(brand[candidates] == brand[prev], 4.0, 1.0)
                weights *= np.where(noun[candidates] == noun[prev], 0.3, 1.0)  # rarely buy the same thing twice
                weights[candidates == prev] = 0.0
            if weights.sum() <= 0:  # a category whose only item was just bought
                candidates, weights = np.arange(config.items), popularity.copy()
                weights[prev] = 0.0
            nxt = int(rng.choice(candidates, p=weights / weights.sum()))
            users.append(f"U{u:05d}")
            seq_items.append(item_ids[nxt])
            times.append(1_600_000_000 + u * 10_000 + t * 60)
            prev = nxt
    raw = RawInteractions(np.array(users), np.array(seq_items), np.array(times, dtype=np.float64))
    return raw, items
