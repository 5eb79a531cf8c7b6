"""What the hub and the workers share, and nothing else: the formats between them.

- :mod:`pdwire.messages`: signed ZeroMQ messages, replay protection;
- :mod:`pdwire.arrays`: arrays as float32 WAV files in the hub's folder, or as message buffers;
- :mod:`pdwire.specs`: how a message declares the arrays it reads and writes;
- :mod:`pdwire.jobs`: job folders (long work in a process of its own).

Workers import this package and :mod:`workers.runtime`, never :mod:`pdbridge` (the hub), so a
model's environment needs only numpy, pyzmq and soundfile besides the model's own packages.
"""
