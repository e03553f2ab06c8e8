"""The only code that writes to MongoDB: the run schema, the journalled
transaction and its lease, sample values read and written by id, the
embeddings cache, repair, and the stored-run base of every results object.
"""
