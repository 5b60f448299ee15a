"""Video sources, frame caches, classes and labelled data folders."""

from hvsa.video.cache import FrameCache, default_cache_dir
from hvsa.video.classes import ClassInfo, Classes
from hvsa.video.data import LabelSource, VideoData, open_data, open_video, resize_labels
from hvsa.video.sources import ImageFolderSource, VideoFileSource, VideoSource

__all__ = [
    "ClassInfo",
    "Classes",
    "FrameCache",
    "ImageFolderSource",
    "LabelSource",
    "VideoData",
    "VideoFileSource",
    "VideoSource",
    "default_cache_dir",
    "open_data",
    "open_video",
    "resize_labels",
]
