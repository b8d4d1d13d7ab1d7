"""The web demo (`nnlite serve`): upload a photo to see its labels and faces, search the library by
keyword, click a face to find the same person. app.py holds the logic, server.py the HTTP routes,
static/ the page, API.md the JSON API."""
