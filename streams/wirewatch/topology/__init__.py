"""The Faust topology: the app factory, the agents of each stage, and the tables that back the core's state."""
