"""SAID machinery around the method in `semrec_worker.methods.said`: tokenised captions and length buckets,
generation accuracy, the training loop (checkpoints, resume, early stop), reports and the throughput bench."""
