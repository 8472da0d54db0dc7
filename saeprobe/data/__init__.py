"""Data sets: sources that all yield one table schema (`schema`), seeded stratified splits
(`split`), the prepared table of a data set (`prepare`) and the SAE corpus (`corpus`).

Kept free of imports, so that a stage reading a prepared table depends on `schema` alone."""
