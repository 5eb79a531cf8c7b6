"""MelodyRNN (magenta 2.1.4) for [pdbridge.melody_rnn]: the AI duet. See docs/models/melody_rnn.md."""
