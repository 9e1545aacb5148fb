"""cobotguard from the outside: the robot emulator, the hardware-in-the-loop rig, reports and the CLI."""
