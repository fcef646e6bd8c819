from etbert.capture.frames import FrameBatch


def test_from_frames_lays_frames_back_to_back():
    batch = FrameBatch.from_frames([(1, 1, b"abc"), (2, 101, b""), (3, 1, b"defg")])
    assert len(batch) == 3
    assert [batch.frame(i) for i in range(3)] == [b"abc", b"", b"defg"]
    assert batch.offset.tolist() == [0, 3, 3]
    assert batch.linktype.tolist() == [1, 101, 1]
    assert batch.wirelen.tolist() == [3, 0, 4]
