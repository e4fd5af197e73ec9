"""The MPC layer: encodings, SPU parties in separate processes, and the local cluster.

Security model: three compute parties run SPU's ABY3 protocol (replicated secret
sharing over the ring Z_2^64), secure against one semi-honest party (honest
majority). Data owners encode and secret-share their own tables; no party ever
sees a value in the clear. Only the disclosure-controlled outputs of a plan are
reconstructed, by the result receiver.

Modules: `encode` (owner: table → arrays), `share` (owner: arrays → shares; receiver:
shares → revealed cells), `wire` (framed messages and share packing), `process` (a
party as a child process: spawning, header, commands), `party` (the party process),
`programs` (plan → SPU executable, and the compiled-program cache), `runtime` (the
SPU configuration every node uses), `cluster` (three local parties and `run_mpc`).
"""

from .cluster import LocalCluster as LocalCluster

__all__ = ["LocalCluster"]
