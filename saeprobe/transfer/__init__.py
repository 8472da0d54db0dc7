"""Zero-shot transfer across data sets: every probe is
trained on one data set and tested both on that data set's test split and, unchanged, on
another data set whose labels mean the same. The rows join the probes' results table
(`train_dataset` != `test_dataset`); the summary says, per representation, how much ROC-AUC
the move costs, with confidence intervals over seeds (each seed draws its own training
sample, so the interval covers the choice of training texts and of folds).

MOSAIC moves a classifier between the languages of one task (`train_and_test` in its
senti_multilingual.py: binarized top-n SAE counts, a logistic regression at C = 1);
`mosaic_lr_c1` is that classifier. The other methods are the probes' own, so that every
representation of the results table is asked the same question across data sets."""
