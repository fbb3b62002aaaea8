"""Reading and writing studies: DICOM discovery and loading (:mod:`.dicom`), other image formats
through SimpleITK (:mod:`.sitk`), writing DICOM series (:mod:`.dicom_write`) and the study, the one
entry point that opens a folder, files or an image file (:mod:`.study`)."""
