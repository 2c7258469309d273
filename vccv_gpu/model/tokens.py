"""Special token ids of the caption vocabulary.

The vocabulary (built by the data pipeline) reserves the first four ids for these tokens:
<pad>=0 (fills captions to a common length; ignored by the loss), <bos>=1 (first decoder input),
<eos>=2 (ends a caption), <unk>=3 (words seen fewer than 3 times in training, paper section IV-A).
Words get ids from 4 on.
"""

PAD: int = 0
BOS: int = 1
EOS: int = 2
UNK: int = 3
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
