"""Faces: detect every face of a photo, then run other apps on each face (see app.toml's [faces]).

The detector is OpenCV's frontal-face Haar cascade, read from the opencv-python-headless
wheel (``cv2.data.haarcascades``): nothing is downloaded. The answer, per photo:

    {"faces": [{"box": [x, y, w, h], "score": 5.83, "apps": {"<app>": <its result list>}}]}

``box`` is in the photo's pixels; ``score`` is the cascade's confidence (the level weight
of its last stage: higher is surer; below about 1 is rarely a face). Faces come surest
first; a photo without a face gives ``"faces": []``. With several photos (``images``),
the answer is ``{"predictions": [{"faces": [...]}, ...]}``, one entry per photo.
"""

import os
import threading

import cv2

from yyai.runtime.errors import InputError

CASCADE = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")


class Faces:
    def setup(self, context):
        """Read [faces] and check the cascade loads (each thread then loads its own: OpenCV's detector
        is not safe to share between threads)."""
        conf = context.config.get("faces", {})
        self.apps = conf.get("apps", [])
        if not isinstance(self.apps, list) or not all(isinstance(app, str) for app in self.apps):
            raise ValueError("[faces] apps must be a list of app names")
        self.min_size = int(conf.get("min_size", 30))
        self.scale_factor = float(conf.get("scale_factor", 1.1))
        self.min_neighbors = int(conf.get("min_neighbors", 5))
        self._local = threading.local()
        self._detector()

    def postprocess(self, outputs, request, context):
        if not request.images:
            raise InputError("faces takes photos: send one as the file field 'img' or as base64 'image'")
        found = [self._faces(context.decode_image(photo), context) for photo in request.images]
        if len(found) == 1:
            return {"faces": found[0]}
        return {"predictions": [{"faces": faces} for faces in found]}

    def _faces(self, image, context):
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        boxes, _, weights = self._detector().detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        order = sorted(range(len(boxes)), key=lambda i: -float(weights[i]))
        boxes = [[int(v) for v in boxes[i]] for i in order]
        scores = [round(float(weights[i]), 2) for i in order]
        crops = [image[y : y + h, x : x + w] for x, y, w, h in boxes]
        results = {app: context.predict(app, images=crops)["predictions"] if crops else [] for app in self.apps}
        return [
            {"box": box, "score": score, "apps": {app: results[app][i] for app in self.apps}}
            for i, (box, score) in enumerate(zip(boxes, scores))
        ]

    def _detector(self):
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = cv2.CascadeClassifier(CASCADE)
            if detector.empty():
                raise RuntimeError(f"cannot read OpenCV's face cascade at {CASCADE}")
            self._local.detector = detector
        return detector
