"""The simulated bench: network namespaces with real daemons, a pty console each."""
