"""The agent side: the bounded message bus and the built-in echo agent."""
