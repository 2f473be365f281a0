#!/usr/bin/env python3
"""Writes fuzz seeds from the known-answer vectors (specs/vectors/*.json): every hex string
long enough to be an envelope becomes a seed of the byte-oriented targets."""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
VECTORS = ROOT.parent / "specs" / "vectors"
TARGETS = ["signed_ops", "contact_card", "cgka_op", "change_and_stream", "sync_frame",
           "store_records", "key_store"]


def hex_strings(value):
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            return
        if len(raw) >= 16:
            yield raw
    elif isinstance(value, list):
        for v in value:
            yield from hex_strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from hex_strings(v)


count = 0
for path in sorted(VECTORS.glob("*.json")):
    for i, raw in enumerate(hex_strings(json.loads(path.read_text()))):
        for target in TARGETS:
            out = ROOT / "corpus" / target
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{path.stem}-{i}").write_bytes(raw)
        count += 1
print(f"{count} seeds per target")
