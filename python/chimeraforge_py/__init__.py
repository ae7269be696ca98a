"""chimeraforge's Python backends: the run protocol over httpx on asyncio (or uvloop)."""
