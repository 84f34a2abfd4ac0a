"""Instruction splitting follows the data's structure: ordinary text never becomes an instruction."""
from __future__ import annotations

from uniembed.data.readers import split_instruction
from uniembed.data.readers.common import mmeb_item


def test_plain_texts_that_start_with_a_verb_stay_content():
    # answers, labels and captions that happen to start with a listed verb (the reported bug)
    for text in ("use a knife", "Select a red one", "answer the phone", "find the exit sign",
                 "Represent the people of the town", "Given up hope"):
        assert split_instruction(text) == (None, text)
    assert split_instruction("A photo of a dog: running") == (None, "A photo of a dog: running")


def test_text_queries_keep_the_reference_instruction_before_the_colon():
    assert split_instruction("Find me an everyday image that matches the given caption: A dog on a bench.") == (
        "Find me an everyday image that matches the given caption:", "A dog on a bench.")
    assert split_instruction("Find a document image that matches the given query:\nwhat is the total?") == (
        "Find a document image that matches the given query:", "what is the total?")


def test_the_line_after_the_placeholder_is_the_instruction_and_its_content_is_split_off():
    assert split_instruction("<|image_1|>\nRepresent the given image for classification\n") == (
        "Represent the given image for classification", None)
    assert split_instruction("<|image_1|>\nRepresent the given image with the following question: What is it?\n") == (
        "Represent the given image with the following question:", "What is it?")
    # RefCOCO: the object's label is content, not part of the instruction
    assert split_instruction('<|image_1|>\nSelect the portion of the image that isolates the object labeled as "man"\n') == (
        "Select the portion of the image that isolates the object labeled as", '"man"')
    assert split_instruction("<|image_1|>\nSelect the portion of the image that isolates the object\nthe dog") == (
        "Select the portion of the image that isolates the object", "the dog")
    assert split_instruction("<|video_1|>\nUnderstand the content of the provided video.") == (
        "Understand the content of the provided video.", None)
    assert split_instruction("<|image_1|>") == (None, None)


def test_instruction_columns_win_and_plain_candidates_stay_plain(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not really a png but present")
    item = mmeb_item("What is in it?", "a.png", tmp_path, instruction="<|image_1|>Represent the given image with the following question:")
    assert item.instruction == "Represent the given image with the following question:" and item.text == "What is in it?"
    assert mmeb_item("use a knife", "", tmp_path).instruction is None
    assert mmeb_item("use a knife", "", tmp_path).text == "use a knife"


def test_an_instruction_on_its_own_line_above_text_content_is_split():
    assert split_instruction("Represent the given text for classification\nan animal 0") == (
        "Represent the given text for classification", "an animal 0")
    assert split_instruction("a caption\nwith two lines") == (None, "a caption\nwith two lines")
