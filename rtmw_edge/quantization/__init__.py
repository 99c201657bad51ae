"""INT8 post-training quantization: calibration data, and the accuracy gate that decides whether INT8 ships."""
