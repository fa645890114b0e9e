"""RaP-Net keypoints (point weight P re-weighted by region weight R): network, weights, detection, ONNX, training.

- ``model``: ``RapNet`` = full-resolution VGG16 base net (features F) + region head (weights R), width multiplier.
- ``weights``: the authors', D2-Net's and our weight files (key mapping, strict loading, default files).
- ``preprocess``: image checks, resizing, "torch"/"caffe" normalisation.
- ``detect``: exact D2-Net hard detection, greedy NMS and RaP-Net scoring, shared by both runtimes.
- ``runtime``: ``TorchRunner`` (CUDA, fp16/bf16, channels-last) and ``OnnxRunner`` (TensorRT/CUDA/CPU providers).
- ``export``: ONNX export of the dense network.
- ``data``, ``losses``, ``train``: base-net and region-head training on posed RGB-D frames.

The feature extractors ``rapnet`` and ``rapnet_p`` (``rapnet_loc.features.rapnet``) put these together.
"""
