"""Nodule detection: lungs (:mod:`.lung`), proposals (:mod:`.candidates`), the 3D re-ranker
(:mod:`.reranker`), patches (:mod:`.patches`), the detector that runs the cascade
(:mod:`.detector`), findings and their measurements (:mod:`.findings`), the onnxruntime session
(:mod:`.onnx_session`) and where the bundled models live (:mod:`.models`)."""
