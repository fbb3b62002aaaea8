"""NodeView model training (torch/torchvision). Never imported by the viewer."""
