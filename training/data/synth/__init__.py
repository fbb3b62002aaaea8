"""Synthetic chest CT with annotated lung nodules (training data source (a)); no Qt, no torch.

Coordinates follow :mod:`nodeview.core.geometry`: arrays ``hu_zyx[k, j, i]`` of int16 HU, LPS mm
positions ``(x, y, z)``, ``origin_xyz`` = centre of voxel ``[0, 0, 0]``. Annotation centres are LPS
mm (= LUNA16 world coordinates) and survive any orientation the series is written in.

Anatomy (analytic, drawn per patient from the seed)
    Body outline with skin (+40 HU), subcutaneous fat (-100, thickness varying with angle; breasts
    in about 40 % of patients), chest-wall and paraspinal muscle (~50), a curved scanner table;
    12 rib pairs (cortex 700-1000 HU, marrow 150-300, costal cartilage anteriorly) following the
    thoracic cavity and descending anteriorly, so each axial slice cuts several ribs obliquely;
    thoracic spine with vertebral bodies (cancellous 280-380 HU in a cortical shell), discs,
    spinal canal, pedicles/laminae, spinous and transverse processes; sternum, scapulae and
    clavicles; mediastinal fat with heart (pericardial fat, myocardium, contrast-filled chambers
    when contrast is on), aorta (ascending, arch with branches, descending; ~40 HU plain or
    180-350 HU with contrast), pulmonary trunk and arteries, SVC, oesophagus; trachea and main
    bronchi (-1000 HU lumen, soft-tissue wall); lungs at about -850 HU with a gravity gradient,
    low-frequency texture, sometimes dependent density or emphysema, fissures (thin lines of the
    fissure's integrated density: two major, the right minor); pulmonary artery and vein trees
    grown from the hila by recursive partitioning of random lung points (a Kitaoka-style
    space-filling model; Murray's law radii, 6 mm at the hilum down to 0.5 mm), bronchi with walls
    along the larger arterial branches; diaphragm domes (right higher) with liver below the right
    lung, stomach (fluid with an air cap) and spleen below the left.

Acquisition
    Slice thickness 1, 1.25, 2.5 or 5 mm (sometimes overlapping reconstruction), pixel spacing
    0.55-0.9 mm chosen so the body fits a 512 field of view; the phantom is drawn on a fine z grid
    (<= 1.25 mm) and reduced with the slice-sensitivity profile (a box of the slice thickness
    softened by a Gaussian), then blurred in-plane with a Gaussian PSF (FWHM 0.6-1.0 mm);
    quantum noise sd 10-40 HU, white or in-plane correlated (and correlated between overlapping
    slices; each slice's noise is a shifted, flipped window of a bank of independent noise
    images); values clipped to [-1024, 3071];
    pixels outside the reconstruction circle set to -2000 or -3024 in some scans. Most scans are
    HFS with the identity orientation; some are FFS (identity, or rows running to patient right
    and slices stored inferior to superior along the flipped normal), always with a correct
    :class:`~nodeview.core.geometry.Geometry`.

Nodules (3-30 mm; ground glass up to 40 mm so the rule's large-GGN branch has examples)
    solid (+20..+60 HU), part-solid (ground-glass halo -600..-400 with a solid core),
    ground-glass (-720..-380 with internal texture), calcified (central, diffuse, popcorn or
    laminated calcium 400-1000 HU); margins smooth, lobulated (union of spheres) or spiculated
    (tapering radial spicules); locations isolated, juxta-pleural (centre 0.6-0.9 radius from the
    pleura, so the nodule abuts the chest wall) or juxta-vascular (touching a vessel). Nodules are
    rendered by supersampling each voxel's footprint (pixel x slice-sensitivity profile) plus the
    PSF and blended as ``out = max(bg, (1 - a) * bg + a * nodule_hu)``: the nodule replaces
    lung, denser background (vessels crossing a ground-glass nodule, the chest wall) shows
    through. ``diameter_mm`` is the equivalent-sphere diameter of the nodule body (spicules
    excluded); the centre is the centre of that body.

Malignancy rule (mirrors Lung-RADS v2022 risk categories; :func:`malignancy_probability`)
    ===========================  ==========================================  =============
    kind                         size (mm)                                   probability
    ===========================  ==========================================  =============
    calcified (any pattern)      any                                         0.01
    solid                        < 6 / 6-8 / 8-15 / >= 15                    0.01 / 0.02 /
                                                                             0.10 / 0.30
    part-solid                   total < 6                                   0.01
    part-solid (total >= 6)      solid component < 6 / 6-8 / >= 8            0.05 / 0.25 /
                                                                             0.50
    ground-glass                 < 30 / >= 30                                0.02 / 0.20
    ===========================  ==========================================  =============

    Margins multiply the odds (not for calcified nodules): lobulated x2, spiculated x10 (the
    Lung-RADS "4X" upgrade). ``malignancy_score`` stores the probability. The label is
    THRESHOLDED, not sampled: ``malignant = probability >= MALIGNANT_THRESHOLD`` (0.15, the
    Lung-RADS 4B risk level), so the label is a deterministic function of what the image shows
    (:func:`.nodules.is_malignant`). ``generate_scan(..., label_mode="sample")`` instead draws the label
    from the probability with the scan's random generator.

Modules
    :mod:`.arrays` (array types, HU constants, painting helpers), :mod:`.nodules` (malignancy rule,
    nodule model, rendering, blending), :mod:`.placement` (where a nodule goes), :mod:`.vessels`
    (tubes and vessel trees), :mod:`.anatomy` (the patient and the scene), :mod:`.scanner`
    (acquisition, PSF, noise), :mod:`.generator` (a whole scan), :mod:`.dicom` (writing it).

API
    :func:`.generator.generate_scan` (deterministic given ``seed`` and the arguments) returns
    ``(Volume, [NoduleAnnotation])``; :func:`.generator.generate_scan_full` also returns the acquisition and
    nodule models and takes the options (kinds, locations, margins, sizes, noise, contrast,
    orientation, label mode); :func:`.dicom.write_scan` writes the scan as a DICOM series with
    :func:`nodeview.core.io.dicom_write.write_series` and returns a
    :class:`~training.data.annotations.ScanRecord`. Nodules are drawn after the anatomy, so the same
    seed without nodules gives the same patient. The nodule renderer (:mod:`.nodules`,
    :mod:`.placement`) is shared with
    :mod:`training.data.insert`.

Speed
    A 512 x 512 x 220-320 scan takes about 5-7 s on two CPU cores (the anatomy of each slice is
    painted in threads), plus about 1.5 s to write it as DICOM; 48 x 128 x 128 about 0.5-1 s.
    Work arrays are reused by later scans of the same thread.
"""
