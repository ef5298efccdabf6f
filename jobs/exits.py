"""How a training process tells its supervising worker why it stopped: a dedicated exit code, with
the message on the log's last line that starts with ERROR_MARK. Its own module, so that the child
(jobs/child.py) and the supervisor (jobs/supervise.py) share it without importing each other."""
TRAINING_ERROR_EXIT = 3  # the child stopped with a message for the user, the log's last ERROR_MARK line
ERROR_MARK = "g2rpo-error: "
