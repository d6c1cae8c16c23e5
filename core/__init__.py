"""Continuum's engine: long answers from LLM APIs by response continuation.

Never imports streamlit. The public API is what ``__all__`` names.
"""

from __future__ import annotations
