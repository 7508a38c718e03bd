"""bertcourse: ELMo, GPT and BERT on one shared attention core, for a course on how BERT came to be."""

from bertcourse.attention import (
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from bertcourse.device import get_device, seed_everything

__version__ = "0.1.0"
