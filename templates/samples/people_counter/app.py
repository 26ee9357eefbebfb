"""People counter: YOLOX-nano finds people, the ones whose feet stand in a region are counted.

Inputs (graph.json): ``video_in`` (media), ``roi`` (string "left,top,right,bottom", normalized
[0, 1] of the frame), ``threshold`` (float32, minimum detection score in percent),
``clip_threshold`` (int32: when the count reaches it, backpack.clips.ClipRecorder writes an mp4
of the 5 s before and 10 s after to /opt/aws/panorama/storage/clips/; 0 = off; clips are
skipped with one warning when neither PyAV nor OpenCV is installed). The model
node ``detector`` is YOLOX-nano (ONNX, input ``images`` [1, 3, 416, 416] BGR 0-255
letterboxed; output [1, 3549, 85]); backpack.yolox does the decode, the class filter (COCO
person) and NMS. A detection shorter than SMALL_BOX_HEIGHT of the frame must also score at least
SMALL_BOX_SCORE: small boxes are where YOLOX-nano takes scenery for people (vtest.avi's blue
signpost, top left, 33 px of 576, scores up to 0.61 as a person in every frame). The count is
per frame (people in view now); there is no tracker, so a person is counted in every frame
they are in, not once. Each counted person gets a box (``add_rect``), the region is drawn on
the frame, the count is a label and a log line (``/opt/aws/panorama/logs/app.log`` and
stdout). Runs as is under ``panorama-cli run`` and on the appliance.
"""

import logging
import os
import sys

import panoramasdk

from backpack.errors import MissingDependencyError
from backpack.yolox import PERSON, detect, letterbox

LOG_DIR = "/opt/aws/panorama/logs"
CLIP_DIR = "/opt/aws/panorama/storage/clips"
MODEL_NODE = "detector"
ROI_COLOR = (0, 215, 255)  # BGR yellow
#: Boxes shorter than this fraction of the frame's height need at least SMALL_BOX_SCORE.
SMALL_BOX_HEIGHT = 0.07
SMALL_BOX_SCORE = 0.65


def make_logger():
    logger = logging.getLogger("people_counter")
    logger.setLevel(logging.INFO)
    handlers = [logging.StreamHandler(sys.stdout)]
    if os.path.isdir(LOG_DIR):
        handlers.append(logging.FileHandler(os.path.join(LOG_DIR, "app.log")))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger


log = make_logger()


def parse_roi(text):
    """'left,top,right,bottom' (normalized) -> a tuple of 4 floats; the whole frame if invalid."""
    try:
        left, top, right, bottom = (min(max(float(v), 0.0), 1.0) for v in text.split(","))
    except ValueError:
        log.warning("roi %r is not 'left,top,right,bottom'; using the whole frame", text)
        return (0.0, 0.0, 1.0, 1.0)
    if right <= left or bottom <= top:
        log.warning("roi %r is empty; using the whole frame", text)
        return (0.0, 0.0, 1.0, 1.0)
    return (left, top, right, bottom)


def draw_region(image, roi, thickness=2):
    """Draw the region's outline in place (numpy only: no OpenCV needed on the appliance)."""
    height, width = image.shape[:2]
    x1, y1 = int(roi[0] * (width - 1)), int(roi[1] * (height - 1))
    x2, y2 = int(roi[2] * (width - 1)), int(roi[3] * (height - 1))
    image[y1 : y1 + thickness, x1 : x2 + 1] = ROI_COLOR
    image[max(y2 - thickness + 1, 0) : y2 + 1, x1 : x2 + 1] = ROI_COLOR
    image[y1 : y2 + 1, x1 : x1 + thickness] = ROI_COLOR
    image[y1 : y2 + 1, max(x2 - thickness + 1, 0) : x2 + 1] = ROI_COLOR


def plausible(person, shape):
    """A person, not scenery: tall enough, or a confident detection (see the module docstring)."""
    x1, y1, x2, y2 = person.normalized(shape)
    return y2 - y1 >= SMALL_BOX_HEIGHT or person.score >= SMALL_BOX_SCORE


def make_clip_recorder(clip_threshold):
    """A ClipRecorder for the event clips, or None (off, or PyAV/OpenCV not installed)."""
    if clip_threshold <= 0:
        return None
    from backpack.clips import ClipRecorder

    try:
        return ClipRecorder(pre_s=5, post_s=10, folder=CLIP_DIR)
    except MissingDependencyError as exc:
        log.warning("event clips are off: %s", exc)
        return None


class PeopleCounter(panoramasdk.node):
    def __init__(self):
        super().__init__()
        self.roi = parse_roi(self.inputs.roi.get())
        self.threshold = float(self.inputs.threshold.get()) / 100.0
        self.clip_threshold = int(self.inputs.clip_threshold.get())
        self.clips = make_clip_recorder(self.clip_threshold)
        self.last_count = 0
        self.frames = 0
        log.info(
            "people counter ready: roi=%s threshold=%.2f clip_threshold=%d",
            self.roi,
            self.threshold,
            self.clip_threshold,
        )

    def clip(self, stream, inside):
        """Feed the clip recorder; trigger a clip when the count crosses clip_threshold."""
        self.clips.add(stream.image)
        if inside >= self.clip_threshold > self.last_count:
            log.info("frame %d: %d people: recording an event clip", self.frames, inside)
            self.clips.trigger("people-%d" % inside)
        self.last_count = inside

    def count(self, stream):
        image = stream.image
        tensor, ratio = letterbox(image)
        (output,) = self.call({"images": tensor}, MODEL_NODE)
        found = detect(output, ratio, classes=(PERSON,), score_threshold=self.threshold)
        people = [p for p in found if plausible(p, image.shape)]
        left, top, right, bottom = self.roi
        inside = 0
        for person in people:
            x1, y1, x2, y2 = person.normalized(image.shape)
            feet_x, feet_y = (x1 + x2) / 2, y2
            if left <= feet_x <= right and top <= feet_y <= bottom:
                inside += 1
                stream.add_rect(x1, y1, x2, y2)
        draw_region(image, self.roi)
        stream.add_label("people: %d" % inside, 0.02, 0.05)
        return inside, len(people)

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            inside, found = self.count(stream)
            log.info("frame %d: %d people in region (%d found)", self.frames, inside, found)
            if self.clips is not None:
                self.clip(stream, inside)
        self.frames += 1
        self.outputs.video_out.put(streams)


def main():
    app = PeopleCounter()
    try:
        while True:
            app.process()
    except KeyboardInterrupt:
        log.info("stopped after %d frames", app.frames)
    finally:
        if app.clips is not None:
            app.clips.close()


if __name__ == "__main__":
    main()
