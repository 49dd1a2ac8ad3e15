"""The Quality Scoring Model (QSM): the encoder scorer, its triplet training and its evaluation (stages `qsm`,
`qsm_eval`)."""
