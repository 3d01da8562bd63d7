"""Reading an offline W&B run file back, so tests can check what a run logged without a W&B server.

A `run-*.wandb` file is a LevelDB-style log (32 KiB blocks, 7-byte record headers) of protobuf `Record`s. W&B's
service process may still be writing the last records when `run.finish()` returns, so the readers wait (up to
`timeout` seconds) for the run's `exit` record before they answer."""
from __future__ import annotations
import json, struct, time
from pathlib import Path


def read_wandb_records(path, timeout: float = 30.0) -> list:
    "The protobuf `Record`s of a W&B run file, once it holds the run's exit record (or after `timeout` seconds)."
    deadline = time.monotonic() + timeout
    while True:
        records = _parse_run_file(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline: return records
        time.sleep(0.2)


def _parse_run_file(path) -> list:
    "The protobuf `Record`s of a W&B run file (`run-*.wandb`: LevelDB log format, 32 KiB blocks, 7-byte headers)."
    from wandb.proto import wandb_internal_pb2 as pb
    data, block = Path(path).read_bytes(), 32768
    if data[:4] != b":W&B": raise ValueError(f"{path}: not a W&B run file")
    pos, payloads, parts = 7, [], []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7: pos += left; continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0: pos += left; continue          # zero padding up to the end of the block
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1: payloads.append(chunk)          # FULL
        elif kind == 2: parts = [chunk]               # FIRST
        elif kind == 3: parts.append(chunk)           # MIDDLE
        elif kind == 4: payloads.append(b"".join(parts + [chunk]))  # LAST
    records = []
    for payload in payloads:
        record = pb.Record(); record.ParseFromString(payload); records.append(record)
    return records


def read_wandb_history(path) -> list[dict]:
    "The history rows (dicts of logged values) of a W&B run file."
    rows = []
    for r in read_wandb_records(path):
        if r.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item})
    return rows


def read_wandb_config(path) -> dict:
    "The configuration (hyperparameters) recorded in a W&B run file."
    config = {}
    for r in read_wandb_records(path):
        if r.WhichOneof("record_type") == "config":
            for i in r.config.update: config[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
    return config
