"""Write the worked example's data: support tickets in three classes, plus unlabeled tickets.

    python examples/tickets/make_data.py            # -> examples/tickets/data/{train,test}.csv, tickets.txt

Templates filled at random (seeded), with words shared across classes and 10% of labels
flipped, so the task is learnable but not trivial. Deterministic: the same files every time.
"""

import csv
import random
import sys
from pathlib import Path

SUBJECT = ["my account", "the app", "your service", "the dashboard", "my subscription", "the website"]
CLASSES = {
    "billing": [
        "i was charged twice for {s} this month",
        "please refund the payment for {s}",
        "the invoice for {s} shows the wrong amount",
        "why did the price of {s} go up",
        "my card was billed but {s} is still on the free plan",
        "cancel {s} and stop charging me",
    ],
    "bug": [
        "{s} crashes when i open the settings page",
        "{s} shows an error after the last update",
        "login to {s} fails with a blank screen",
        "{s} is very slow and times out",
        "the export button in {s} does nothing",
        "{s} freezes whenever i upload a file",
    ],
    "feature": [
        "could {s} support dark mode",
        "please add an export to csv option in {s}",
        "it would be great if {s} had keyboard shortcuts",
        "i would love a calendar view in {s}",
        "can you let {s} share reports with my team",
        "please make {s} work offline",
    ],
}
OPENERS = ["hi,", "hello team,", "", "urgent:", "quick question:", "thanks for the help so far."]
CLOSERS = ["thanks", "regards", "", "please help", "this is the second time i ask", "cheers"]


def ticket(rng: random.Random, label: str) -> str:
    body = rng.choice(CLASSES[label]).format(s=rng.choice(SUBJECT))
    return " ".join(x for x in (rng.choice(OPENERS), body, rng.choice(CLOSERS)) if x)


def write(path: Path, n_per_class: int, rng: random.Random) -> None:
    rows = []
    for label in CLASSES:
        for _ in range(n_per_class):
            shown = label if rng.random() > 0.1 else rng.choice(list(CLASSES))  # 10% label noise
            rows.append((ticket(rng, label), shown))
    rng.shuffle(rows)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)


def main(out: Path) -> None:
    rng = random.Random(0)
    out.mkdir(parents=True, exist_ok=True)
    write(out / "train.csv", 200, rng)
    write(out / "test.csv", 100, rng)
    lines = [ticket(rng, rng.choice(list(CLASSES))) for _ in range(3000)]
    (out / "tickets.txt").write_text("\n".join(lines) + "\n")  # unlabeled: for the LM
    print(f"wrote {out}/train.csv (600), test.csv (300), tickets.txt (3,000 unlabeled)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data")
