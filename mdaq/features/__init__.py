"""Per-pool features the selectors read: QSM scores, diversity embeddings, IFD (stages `features`, `ifd`)."""
