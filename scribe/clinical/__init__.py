"""Clinical language (drugs, findings, negation, numbers, vitals) shared by the note engine, grounding, benches."""
