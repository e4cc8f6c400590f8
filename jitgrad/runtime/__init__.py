"""The runtime: a recorded segment lowered to a Program (instruction rows over one arena)
and run by a backend's interpreter in one native call; the backends' eager launchers."""
