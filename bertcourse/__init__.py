"""bertcourse: ELMo, GPT and BERT on one shared attention core, for a course on how BERT came to be.

The names below are the public API that notebooks, exercises and tests rely on. Figures live in
``bertcourse.plotting`` and grading in ``bertcourse.grading``; neither is imported here, so
``import bertcourse`` stays light.
"""

from bertcourse.attention import (
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from bertcourse.base import CheckpointError
from bertcourse.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from bertcourse.device import get_device, seed_everything
from bertcourse.elmo import ELMo, ELMoConfig
from bertcourse.embeddings import Embeddings
from bertcourse.engine import History, evaluate, train
from bertcourse.feedforward import FeedForward
from bertcourse.gpt import GPT, GPTConfig
from bertcourse.heads import SequenceClassifier, TokenClassifier, mean_pool
from bertcourse.lstm import LSTM, LSTMCell
from bertcourse.objectives import (
    IGNORE_INDEX,
    backward_lm_loss,
    causal_lm_loss,
    mask_tokens,
    masked_lm_loss,
    next_sentence_pairs,
)
from bertcourse.pretrained import bert_from_hf, from_pretrained, gpt_from_hf, load_minilm
from bertcourse.scalar_mix import ScalarMix
from bertcourse.tokenizers import CharTokenizer, WordPieceTokenizer, minilm_vocab_path
from bertcourse.transformer import TransformerBlock

__version__ = "0.1.0"
