"""Loading into the destination: the tables' shape, how a file's rows reach dlt, Delta tables, BI views."""
