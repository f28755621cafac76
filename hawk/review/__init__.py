"""The review page: curate a class's spectrogram images in the browser, keyboard first.

:class:`~hawk.review.folder.ImageFolder` is one folder of images (a curation folder, writable, or a
search output, read-only), :class:`~hawk.review.folder.DroppedFolder` what unattended curation
dropped, with restore, :class:`~hawk.review.folder.QueueFolder` a doubt queue with yes/no verdicts
(:class:`~hawk.review.folder.FieldQueueFolder` the same for the user's own recordings);
:class:`~hawk.review.server.ReviewServer` serves the page and its small
JSON API on 127.0.0.1.
"""

from hawk.review.folder import DroppedFolder, FieldQueueFolder, ImageFolder, QueueFolder
from hawk.review.server import ReviewServer

__all__ = ["DroppedFolder", "FieldQueueFolder", "ImageFolder", "QueueFolder", "ReviewServer"]
