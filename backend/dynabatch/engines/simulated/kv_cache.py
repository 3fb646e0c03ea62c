"""Paged KV cache bookkeeping: fixed-size blocks, counted per request.

The simulator needs how many blocks each request holds, not which ones (there is no
prefix reuse), so a block is a count. Invariant: used + free == total, always.
"""

from __future__ import annotations


class BlockManager:
    def __init__(self, total_blocks: int, tokens_per_block: int) -> None:
        if total_blocks < 1 or tokens_per_block < 1:
            raise ValueError("total_blocks and tokens_per_block must be >= 1")
        self.total_blocks = total_blocks
        self.tokens_per_block = tokens_per_block
        self.free_blocks = total_blocks
        self._held: dict[int, int] = {}

    @property
    def used_blocks(self) -> int:
        return self.total_blocks - self.free_blocks

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.tokens_per_block)

    def held(self, request_id: int) -> int:
        return self._held.get(request_id, 0)

    def grow_to(self, request_id: int, tokens: int) -> bool:
        """Make the request hold enough blocks for `tokens` tokens; False (nothing
        allocated) when the free blocks do not cover it."""
        need = -(-tokens // self.tokens_per_block) - self._held.get(request_id, 0)
        if need <= 0:
            return True
        if need > self.free_blocks:
            return False
        self.free_blocks -= need
        self._held[request_id] = self._held.get(request_id, 0) + need
        return True

    def release(self, request_id: int) -> int:
        """Free every block the request holds; return how many."""
        n = self._held.pop(request_id, 0)
        self.free_blocks += n
        return n

    def check(self) -> None:
        """Raise AssertionError when the books do not balance (tests call this)."""
        held = sum(self._held.values())
        assert 0 <= self.free_blocks <= self.total_blocks, (self.free_blocks, self.total_blocks)
        assert held + self.free_blocks == self.total_blocks, (
            held,
            self.free_blocks,
            self.total_blocks,
        )
        assert all(n > 0 for n in self._held.values()), self._held
