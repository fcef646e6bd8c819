"""ET-BERT (Lin et al., WWW 2022): a BERT pre-trained on the bytes of encrypted traffic, fine-tuned per task.

    tokens.py      Datagram2Token: packet bytes -> overlapping hex bigrams -> token ids
    vocab.py       the vocabularies (full bigram, trained WordPiece, the official file) and their tokenizer
    bursts.py      BURSTs of a flow and the sub-burst pairs of Same-origin BURST Prediction
    pretrained.py  the pre-trained model format on disk (transformers + tokenizer + etbert.json)
    pretrain.py    Masked BURST Model + Same-origin BURST Prediction, with checkpoints and exact resume
    model.py       the fine-tuned classifiers of the harness: etbert-packet and etbert-flow
"""
