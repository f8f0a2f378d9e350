"""Personal data: finding and redacting it in transcripts (``pii.py``), and what an erased
subject leaves behind for the syncs to honour (``tombstones.py``). Core: every stage may use it."""
