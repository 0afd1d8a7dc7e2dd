"""Services: the photo day's operations, one module per part of the pipeline (receiving -> regrouping ->
export -> drive_sync) and per thing people manage (batches, roster, signup, accounts, corrections).

A service flushes; its caller (a request through @db_retry, a processor step through db_commit_with_retry)
owns the transaction and commits once.
"""
