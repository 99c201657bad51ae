"""Images, videos and cameras: what an input is (inputs), and predicting on them (predict, images, video, outputs)."""

from rtmw_edge.media.inputs import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]
