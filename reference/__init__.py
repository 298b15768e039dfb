"""PandaGPT's original inference, rebuilt independently: the oracle the service is held to.

`pandagpt.ReferencePandaGPT` is the language side (transformers + peft on the
unconverted sources), `media.preprocess_upstream` the original's media cost,
`path.ReferencePath` the two with ImageBind, one request at a time. The parity
tests compare the service against it and the benchmark times it. It imports
nothing of the service, so agreement with the service is evidence, not tautology
(import-linter holds that line).
"""
