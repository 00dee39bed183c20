module vigil/fuzzdiff

go 1.19
