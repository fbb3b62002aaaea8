"""Training data: annotations (the scan list every step reads), data sources (the synthetic
generator, LUNA16, LIDC XML, a CSV of scans, nodules inserted into real scans, real crops),
``make_data`` (writes a data set) and ``dataset`` (proposals labelled and cut into patches)."""
