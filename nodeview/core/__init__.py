"""Qt-free, torch-free core: study I/O, geometry, and everything detection and reports compute."""
