"""Text in, text out: the shipped tokenizer, TensorRT-LLM-style preprocessing and
postprocessing, and the BLS model's request logic (docs/TEXT.md)."""
