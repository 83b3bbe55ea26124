"""The `wizard` room: the first-boot setup wizard's steps, answers and apply."""
