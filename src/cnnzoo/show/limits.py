"""The largest pictures ``cnnzoo show`` and ``cnnzoo report`` draw: past these a picture is too
big to read, and takes minutes or more memory than the machine has to draw. Kept apart from the
drawing code so that the command line's help states them without importing torch."""

from __future__ import annotations

from ..errors import CnnzooError

MAX_PER_CLASS = 50  # show data: a row of 50 images is 3,500 pixels wide
MAX_COUNT = 64  # show predictions, report: eight rows of eight test images
MAX_DEPTH = 100  # show gradients: by 60 layers the plain sigmoid stack's first gradient is 0
# show cam's methods (cnnzoo.show.cam.METHODS), named here for the command line's help
CAM_METHODS = ("gradcam", "gradcam++", "layercam", "saliency", "integrated-gradients",
               "occlusion")


def check_limit(parameter: str, value: int, limit: int, why: str) -> None:
    """A one-line ``CnnzooError`` that names ``parameter`` and the range 1 to ``limit`` unless
    ``value`` lies in it; ``why`` says what a larger value would cost."""
    if not 1 <= value <= limit:
        raise CnnzooError(f"{parameter}={value}: give 1 to {limit} ({why})")
