"""Qt-free, torch-free core: study I/O, geometry, and everything detection and reports compute.

Rooms (lower rooms never import higher ones; ``lint-imports`` checks it):

- base modules, here: ``geometry``, ``volume``, ``views``, ``windowing``, ``errors``, ``progress``,
  ``parallel``, which every room may use;
- :mod:`.io`: discover, load and write DICOM and other image formats; the study;
- :mod:`.detect`: lungs, proposals, re-ranker, patches, the detector, findings and their
  measurements, the ONNX session and where the bundled models live;
- :mod:`.followup`: comparison with a prior study: registration, nodule matching, growth and VDT,
  Lung-RADS v2022 and Fleischner 2017 suggestions, the findings JSON /2 (uses ``detect``);
- :mod:`.report`: what a report holds and how it is drawn (uses ``detect`` and ``followup``).
"""
