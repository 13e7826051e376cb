"""The encoding wing: which model, proven by its hash, and the encoders that turn text into vectors.

Owns the model's identity (`model`), the one `Encoder` protocol and the question's embedding (`base`),
the torch reference encoder (`torch_encoder`), the ONNX encoders for builds and queries
(`onnx_encoder`, `build_encoder`), int8 variants (`quantize`), the verified-artifact cache every exported
or quantized model goes through (`artifacts`), the micro-batcher (`batching`) and the provider that
chooses and caches them (`encoders`).

May import: `rag.config`, `rag.errors`, `rag.files`. Nothing here knows about documents or indexes.
"""
