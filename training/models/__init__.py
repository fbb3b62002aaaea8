"""The networks: the ResNet-50 nodule classifier (:mod:`.nodule_net`) and its inference."""
