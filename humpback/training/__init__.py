"""SFT training: example building with output-only loss and source tags (sft), the trainer core (trainer)."""
